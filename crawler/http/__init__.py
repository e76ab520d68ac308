"""One attempt on the wire: the session, the request and its body, content decoding."""
