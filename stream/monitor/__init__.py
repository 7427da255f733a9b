"""stream-monitor's parts without sockets: the traces the page draws (``traces``), each daemon's health
(``health``) and the web server with its page (``web``, ``static/``). The daemon is
``stream.daemons.monitor``."""
