from agentx_lb.cli import main

raise SystemExit(main())
