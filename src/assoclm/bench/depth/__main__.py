"""``python -m assoclm.bench.depth dial|ood|drift [flags]``."""

from assoclm.bench.depth import main

raise SystemExit(main())
