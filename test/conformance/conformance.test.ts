// RFC 6455 and RFC 7692 conformance, Autobahn-style: every case of cases.ts
// (and cases-deflate.ts: the compression groups 12-14) against a dillws echo
// endpoint, as a server and as a client. One `it` per case and role. dillws
// claims the strict reading, so a NON-STRICT verdict fails the test as well
// (the report counts it separately and exits 1 only on FAILED).
// The full Autobahn-like sizes of groups 1-10 run here too (16 MiB messages,
// 1000 round trips per case): both roles take about 10 s on 2 cores. The
// compression groups run with Autobahn's sizes, fragmentations and
// parameters but fewer messages per case (cases-deflate.ts; about 12 s for
// both roles); `npm run conformance` sends Autobahn's 1000 per case.
// CONFORMANCE_QUICK=1 scales group 9 (and the largest group 1 cases) down
// for slow machines.
import { afterAll, describe, expect, it } from "vitest";
import { resourceBaseline } from "../helpers/leaks";
import { conformanceCases } from "./cases";
import { CASE_TIMEOUT, ROLES, runCase } from "./runner";

const leaks = resourceBaseline();
afterAll(async () => { expect(await leaks()).toEqual([]); });

// `full` is for groups 1-10; the compression groups run their npm-test counts here.
const cases = conformanceCases({ full: process.env.CONFORMANCE_QUICK !== "1", deflateFull: false });

for (const role of ROLES) {
  describe(`RFC 6455 conformance, dillws as ${role}`, () => {
    for (const c of cases) {
      it(`${c.id} ${c.title}`, async () => {
        const v = await runCase(role, c);
        expect(v.result, `${c.id} (${role}): expected ${c.expect}; ${v.reason}`).toBe("OK");
      }, (c.timeoutMs ?? CASE_TIMEOUT) + 10_000);
    }
  });
}
