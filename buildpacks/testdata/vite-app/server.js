// Serves what `vite build` wrote into dist/, with sirv, a runtime
// dependency resolved through node_modules.
import http from "node:http";
import sirv from "sirv";

const assets = sirv("dist", { single: true });
http
  .createServer((req, res) => {
    if (req.url === "/health") {
      res.end("ok\n");
      return;
    }
    assets(req, res);
  })
  .listen(Number(process.env.PORT), "127.0.0.1");
