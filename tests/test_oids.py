import pytest

from agentx_lb.oids import VipColumn, format_oid, parse_oid


@pytest.mark.parametrize("text", [".1.3.6.1.4.1", "1.3.6.1.4.1", " 1.3.6.1.4.1 "])
def test_parse_oid_accepts_dotted_forms(text: str) -> None:
    assert parse_oid(text) == (1, 3, 6, 1, 4, 1)


@pytest.mark.parametrize("text", ["", "1", "1.x.3", "1.3.-1", "1.3.4294967296"])
def test_parse_oid_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match=r"not an OID|invalid literal"):
        parse_oid(text)


def test_format_round_trip() -> None:
    assert format_oid(parse_oid("1.3.6.1.4.1.8072")) == "1.3.6.1.4.1.8072"


def test_columns_are_unique_and_dense() -> None:
    assert [int(c) for c in VipColumn] == list(range(1, 21))
