from softxent.cli import main

raise SystemExit(main())
