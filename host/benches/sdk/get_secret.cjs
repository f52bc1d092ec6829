// The official JS SDK's warm getSecret, driven block by block by the get_secret benchmark.
//
// Reads KVRUN_BENCH_URL, KVRUN_BENCH_TOKEN and the secret name (argv[2]); the vault's CA
// comes in through NODE_EXTRA_CA_CERTS and the SDK through NODE_PATH. For every line "N" on
// stdin it times N calls of `SecretClient.getSecret` and prints their latencies in
// nanoseconds as one JSON array; "warm N" does the same without printing.
"use strict";
const { SecretClient } = require("@azure/keyvault-secrets");
const readline = require("node:readline");

const token = process.env.KVRUN_BENCH_TOKEN;
const credential = { getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3600_000 }) };
const client = new SecretClient(process.env.KVRUN_BENCH_URL, credential, {
  disableChallengeResourceVerification: true,
});
const name = process.argv[2];

async function main() {
  console.log("ready");
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const words = line.trim().split(/\s+/);
    const samples = [];
    for (let i = 0; i < Number(words[words.length - 1]); i++) {
      const start = process.hrtime.bigint();
      const secret = await client.getSecret(name);
      samples.push(Number(process.hrtime.bigint() - start));
      if (!secret.value) throw new Error("no value");
    }
    console.log(JSON.stringify(words[0] === "warm" ? [] : samples));
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
