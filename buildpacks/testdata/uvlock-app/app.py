from markupsafe import escape


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(escape("<hello from a uv.lock app>")).encode()]
