import flask
import pkg_resources
import setuptools

app = flask.Flask(__name__)


@app.route("/")
def index():
    return "flask %s setuptools %s\n" % (flask.__version__, setuptools.__version__)
