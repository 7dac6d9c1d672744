"""What the app's pages share (Streamlit layout helpers); the work happens in the ``emorec`` package."""
