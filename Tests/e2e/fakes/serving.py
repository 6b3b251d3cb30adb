"""What every HTTP fake shares: a threaded server on loopback that hands each request, whatever its
method, to its fake's `_dispatch(handler, method)`, and the start/stop of that server."""
import http.server
import threading


class DispatchHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name; fakes record for themselves
        pass

    def do_GET(self):
        self.server.fake._dispatch(self, "GET")

    def do_HEAD(self):
        self.server.fake._dispatch(self, "HEAD")

    def do_POST(self):
        self.server.fake._dispatch(self, "POST")

    def do_PUT(self):
        self.server.fake._dispatch(self, "PUT")

    def do_PATCH(self):
        self.server.fake._dispatch(self, "PATCH")

    def do_DELETE(self):
        self.server.fake._dispatch(self, "DELETE")

    def do_OPTIONS(self):
        self.server.fake._dispatch(self, "OPTIONS")


class DispatchServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class ServedFake:
    """Start, stop and addresses for a fake with `host`, `port` (0: a free one, set by `start`),
    `server_class`, `handler_class` and `thread_name`."""

    server_class = DispatchServer
    handler_class = DispatchHandler
    thread_name = "fake"
    poll_interval = 0.5
    _server = None

    def start(self):
        self._server = self.server_class((self.host, self.port), self.handler_class)
        self._server.fake = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": self.poll_interval},
                                        name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    @property
    def root_url(self):
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self):
        """Where the provider's API lives (its version prefix)."""
        return self.root_url + "/v1"

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
