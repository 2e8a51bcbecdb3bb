"""One module of request and response classes per purpose; requests refuse unknown fields and wrong types."""
