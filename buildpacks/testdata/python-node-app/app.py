from flask import Flask

# The front end is built by npm into static/ at deploy time.
app = Flask(__name__, static_folder="static")


@app.route("/")
def index():
    return app.send_static_file("app.js")
