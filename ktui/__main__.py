from ktui.launch import main

raise SystemExit(main())
