const fs = require("fs");
fs.mkdirSync("dist", {recursive: true});
fs.writeFileSync("dist/server.js", "console.log(\"bundled by build.js\");\n");
