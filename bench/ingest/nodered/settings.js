// Headless Node-RED for bench/ingest: no editor, no admin API, no HTTP listener; the flow next to this file.
// NODERED_USERDIR is where node-red-contrib-influxdb is installed (npm install node-red@4 node-red-contrib-influxdb@0.7).
const path = require("path");
module.exports = {
    userDir: process.env.NODERED_USERDIR,
    flowFile: path.join(__dirname, "flow.json"),
    credentialSecret: false,
    httpAdminRoot: false,
    httpNodeRoot: false,
    disableEditor: true,
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
    telemetry: { enabled: false },
    diagnostics: { enabled: false },
    runtimeState: { enabled: false },
    functionExternalModules: false,
    logging: { console: { level: "info", metrics: false, audit: false } },
};
