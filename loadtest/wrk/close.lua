-- wrk script: every request asks the server to close the connection, so wrk opens a new
-- connection (and makes a new TLS handshake) for each request.
wrk.headers["Connection"] = "close"
