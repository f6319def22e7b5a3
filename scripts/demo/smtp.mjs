// The demo's mail server: SMTP on a loopback address, each message received written to
// <dir>/mail-<n>.txt as a person reads it (From, To, Subject, then the body). No relay, no disk
// besides that directory; the demo deletes it.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { SMTPServer } from "smtp-server";

const [host, portText, dir] = process.argv.slice(2);
if (host === undefined || portText === undefined || dir === undefined) {
  process.stderr.write("usage: smtp.mjs HOST PORT DIR\n");
  process.exit(2);
}

/** Headers (unfolded, by lower-case name) and the text body of a plain RFC 5322 message. */
function readMessage(raw) {
  const split = raw.search(/\r?\n\r?\n/);
  const head = split < 0 ? raw : raw.slice(0, split);
  let body = split < 0 ? "" : raw.slice(split).replace(/^\r?\n\r?\n/, "");
  const headers = new Map();
  for (const line of head.replace(/\r?\n[ \t]+/g, " ").split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  if ((headers.get("content-transfer-encoding") ?? "").toLowerCase() === "quoted-printable") {
    body = body
      .replace(/=\r?\n/g, "")
      .replace(/=([0-9A-F]{2})/gi, (_, h) => String.fromCharCode(Number.parseInt(h, 16)));
  }
  return { headers, body: body.replace(/\r\n/g, "\n").trimEnd() };
}

let count = 0;
const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ["STARTTLS"],
  logger: false,
  onData(stream, _session, callback) {
    const chunks = [];
    stream.on("data", (c) => chunks.push(c));
    stream.on("end", () => {
      const { headers, body } = readMessage(Buffer.concat(chunks).toString("utf8"));
      count++;
      const text = [
        `From:    ${headers.get("from") ?? "(none)"}`,
        `To:      ${headers.get("to") ?? "(none)"}`,
        `Subject: ${headers.get("subject") ?? "(none)"}`,
        "",
        body,
        "",
      ].join("\n");
      writeFileSync(join(dir, `mail-${count}.txt`), text, { mode: 0o600 });
      callback();
    });
  },
});
server.on("error", (err) => {
  process.stderr.write(`demo smtp server: ${err.message}\n`);
});
server.listen(Number(portText), host, () => {
  process.stdout.write(`smtp server listening on ${host}:${portText}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
