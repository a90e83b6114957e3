"""The staff's LAN web app: checkers, managers and dispatchers on their phones, over HTTPS with a
staff session (see app.py for the security model, server.py for how it is served)."""
