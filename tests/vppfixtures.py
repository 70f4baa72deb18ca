"""Emulated-VPP fixtures (owned by the emulator work)."""
