from sac_ivr.cli import main

raise SystemExit(main())
