const express = require("express");

const app = express();
app.use(express.static("dist"));
app.get("/hello", (req, res) => res.send("Hello from an Express app on hop3\n"));
app.listen(process.env.PORT || 3000);
