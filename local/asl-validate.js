// AWS's ASL language service (npm amazon-states-language-service, the validator behind the AWS Toolkit and
// Workflow Studio) over state machine definitions. Reads {"name": definition, ...} as JSON on stdin (a definition
// is an object or its JSON text) and prints {"name": [diagnostic, ...], ...}: every error and warning, with the
// line and character in the definition pretty-printed with two-space indentation (or in the text as given).
'use strict';

const asl = require('amazon-states-language-service');

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const definitions = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const service = asl.getLanguageService({});
  const report = {};
  for (const [name, definition] of Object.entries(definitions)) {
    const text = typeof definition === 'string' ? definition : JSON.stringify(definition, null, 2);
    const document = asl.TextDocument.create(`file:///${encodeURIComponent(name)}.asl.json`, 'json', 0, text);
    const diagnostics = await service.doValidation(document, service.parseJSONDocument(document));
    report[name] = diagnostics.map((d) => ({
      severity: d.severity === 1 ? 'ERROR' : d.severity === 2 ? 'WARNING' : 'INFO',
      message: d.message,
      line: d.range.start.line + 1,
      character: d.range.start.character + 1,
      text: text.split('\n')[d.range.start.line].trim().slice(0, 200),
    }));
  }
  process.stdout.write(JSON.stringify(report));
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(2);
});
