// Reference token ids (and their decoding) for the tokenizer tests:
// node make-token-ids.js TOKENIZER_DIR TEXTS_JSON > qwen3-token-ids.json (or llama2-token-ids.json)
// (needs @lenml/tokenizers unpacked in ./package: npm pack @lenml/tokenizers && tar xzf lenml-tokenizers-*.tgz).
const { TokenizerLoader } = require('./package/dist/main.js');
const fs = require('fs');
const [dir, textsFile] = process.argv.slice(2);
const tokenizer = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(fs.readFileSync(dir + '/tokenizer.json', 'utf8')),
  tokenizerConfig: JSON.parse(fs.readFileSync(dir + '/tokenizer_config.json', 'utf8')),
});
const texts = JSON.parse(fs.readFileSync(textsFile, 'utf8'));
const rows = texts.map(text => {
  const ids = tokenizer.encode(text, { add_special_tokens: false });
  return { text, ids, decoded: ids.length ? tokenizer.decode(ids) : "" };
});
console.log(JSON.stringify(rows).replace(/\},\{/g, '},\n{'));
