from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def index():
    return {"hello": "from a FastAPI app on hop3"}
