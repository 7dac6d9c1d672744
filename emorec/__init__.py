"""emorec: facial-expression recognition on CK+ and in-the-wild photos.

Every entry point (the app, its pages, the CLI, the tests) imports this package first, so the
import below runs before anything loads TensorFlow: TensorFlow loaded before pylibsrtp (which
streamlit-webrtc uses) crashes the process with a segmentation fault.
"""

import pylibsrtp  # noqa: F401  (must stay the first import; see the docstring)

__version__ = "0.1.0"
