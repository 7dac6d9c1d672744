"""What the app's pages share, by concept: ``navigation`` (the page list, each page's setup and
menu), ``loaders`` (cached reading of datasets, models and scans) and ``widgets`` (model picker,
table columns, grids, warnings, paths typed by the user, WebRTC settings).

Layout helpers only; the work happens in the ``emorec`` package.
"""

import emorec  # noqa: F401  (first, before anything loads TensorFlow: see emorec/__init__.py)
