const http = require("http");
const fs = require("fs");
const ms = require("ms");

let dev = "absent";
try {
  require.resolve("kleur");
  dev = "present";
} catch {}

http
  .createServer((req, res) => {
    res.end(`yarn 4 app: ${ms(90000)}, kleur ${dev}, ${fs.readFileSync("built.txt", "utf8")}`);
  })
  .listen(process.env.PORT);
