// What every TypeScript round trip shares: its environment and its checks.
//   API_BASE_URL   e.g. http://127.0.0.1:8080 (required)
//   API_TOKEN      a bearer token (required); its own device is never untrusted
//   OWN_DEVICE_ID  the token's own device id (required)
export function env(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") {
    throw new Error(`${name} must be set`);
  }
  return value;
}

export function check(condition: boolean, message: string): asserts condition {
  if (!condition) {
    throw new Error(`check failed: ${message}`);
  }
}

/** Runs a round trip; a failure names the generator and the failed check. */
export function run(generator: string, roundTrip: () => Promise<void>): void {
  roundTrip().then(
    () => console.log(`${generator}: round trip passed`),
    (error: unknown) => {
      console.error(`${generator}: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(1);
    },
  );
}
