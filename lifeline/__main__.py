from lifeline.cli import main

raise SystemExit(main())
