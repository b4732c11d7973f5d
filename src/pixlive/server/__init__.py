"""The connection layer `pixlive serve` hands uvicorn (its documented `Config(http=...)`):
HTTP/1.1 on httptools' parser, the PSP's webhook answered by the connection, a charge's
WebSocket (websockets' sans-I/O protocol) and Server-Sent Events written straight to the
socket, every other request run through the ASGI app; and the edge limits of a public
server (head and header sizes, timeouts, a connection cap, credentials kept out of logs).

uvicorn stays the process manager (workers, TLS, lifespan, signals); nothing here imports
it: the protocol class is duck-typed to what uvicorn's server hands its protocol factory.
"""
