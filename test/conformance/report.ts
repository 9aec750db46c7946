// Autobahn-style conformance report: every case in both roles, a per-group
// summary table for each role, group 9 timings, and every case that is not
// OK with its reason. Exit code 1 if any case FAILED.
//
//   npx tsx test/conformance/report.ts [--quick] [--role server|client]
//                                      [--case ID-PREFIX] [--json FILE] [--verbose]
//                                      [--deflate-count N]
//
// --quick uses the scaled-down sizes and counts of the vitest run; by
// default the full sizes run (16 MiB messages, 1000 round trips per case,
// and Autobahn's 1000 compressed messages per case in groups 12 and 13,
// which take about half an hour for both roles on 2 cores: --case 12 or
// --case 13.5 picks groups, --deflate-count N sets the messages per case).
import { writeFileSync } from "node:fs";
import { resourceBaseline } from "../helpers/leaks";
import { conformanceCases, GROUPS } from "./cases";
import { ROLES, runCase, type Result, type Role, type Verdict } from "./runner";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const quick = process.argv.includes("--quick");
const verbose = process.argv.includes("--verbose");
const roleArg = arg("--role");
const prefix = arg("--case");
const jsonOut = arg("--json");
const deflateCount = arg("--deflate-count") === undefined ? undefined : Number(arg("--deflate-count"));
if (deflateCount !== undefined && !(Number.isInteger(deflateCount) && deflateCount > 0)) {
  console.error("--deflate-count takes a positive integer");
  process.exit(2);
}

const roles: Role[] = roleArg === undefined ? [...ROLES] : ROLES.filter((r) => r === roleArg);
if (roles.length === 0) {
  console.error(`unknown role ${roleArg}; use server or client`);
  process.exit(2);
}
const cases = conformanceCases({ full: !quick, ...(deflateCount !== undefined ? { deflateCount } : {}) }).filter((c) => prefix === undefined || c.id === prefix || c.id.startsWith(`${prefix}.`));

const pad = (s: string | number, n: number): string => String(s).padEnd(n);
const lpad = (s: string | number, n: number): string => String(s).padStart(n);
const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

const ROLE_TEXT: Record<Role, string> = {
  server: "dillws as server (the suite is a raw client sending masked frames)",
  client: "dillws as client (the suite is a raw server sending unmasked frames)",
};

function summary(role: Role, vs: Verdict[]): string[] {
  const lines: string[] = [];
  lines.push(`${ROLE_TEXT[role]}`);
  lines.push(`  ${pad("Group", 34)}${lpad("Cases", 6)}${lpad("OK", 6)}${lpad("NON-STRICT", 12)}${lpad("FAILED", 8)}${lpad("Time", 11)}`);
  const groups = [...new Set(vs.map((v) => v.group))].sort((a, b) => a - b);
  const tot = { n: 0, ok: 0, ns: 0, f: 0, ms: 0 };
  for (const g of groups) {
    const gv = vs.filter((v) => v.group === g);
    const count = (r: Result): number => gv.filter((v) => v.result === r).length;
    const ms = gv.reduce((a, v) => a + v.ms, 0);
    const row = { n: gv.length, ok: count("OK"), ns: count("NON-STRICT"), f: count("FAILED"), ms };
    tot.n += row.n; tot.ok += row.ok; tot.ns += row.ns; tot.f += row.f; tot.ms += ms;
    lines.push(`  ${pad(`${g} ${GROUPS[g] ?? ""}`, 34)}${lpad(row.n, 6)}${lpad(row.ok, 6)}${lpad(row.ns, 12)}${lpad(row.f, 8)}${lpad(secs(ms), 11)}`);
  }
  lines.push(`  ${pad("Total", 34)}${lpad(tot.n, 6)}${lpad(tot.ok, 6)}${lpad(tot.ns, 12)}${lpad(tot.f, 8)}${lpad(secs(tot.ms), 11)}`);
  return lines;
}

async function main(): Promise<void> {
  const leaks = resourceBaseline();
  const all = new Map<Role, Verdict[]>();
  const t0 = Date.now();
  console.log(`dillws RFC 6455 / RFC 7692 conformance, ${cases.length} cases per role, ` +
    `${quick ? "quick (scaled-down group 9, fewer compressed messages per case)" : "full sizes"}` +
    `${deflateCount !== undefined ? `, ${deflateCount} messages per compression case` : ""}, node ${process.version}, zlib ${process.versions.zlib}`);
  for (const role of roles) {
    const vs: Verdict[] = [];
    for (const c of cases) {
      const v = await runCase(role, c);
      vs.push(v);
      if (verbose || v.result !== "OK") {
        console.log(`  [${role}] ${pad(c.id, 8)} ${pad(v.result, 10)} ${lpad(v.ms.toFixed(1), 9)} ms  ${c.title}${v.reason ? `: ${v.reason}` : ""}`);
      }
    }
    all.set(role, vs);
  }
  console.log("");
  for (const role of roles) {
    for (const l of summary(role, all.get(role)!)) console.log(l);
    console.log("");
  }

  // Group 9: the time per case, both roles side by side (informational).
  const g9 = cases.filter((c) => c.group === 9);
  if (g9.length > 0) {
    console.log("Group 9 timings (informational; nothing asserts on them)");
    console.log(`  ${pad("Case", 8)} ${pad("Title", 62)}${roles.map((r) => lpad(r, 12)).join("")}`);
    for (const c of g9) {
      const cells = roles.map((r) => {
        const v = all.get(r)!.find((x) => x.id === c.id)!;
        return lpad(v.result === "OK" ? `${v.ms.toFixed(1)} ms` : v.result, 12);
      });
      console.log(`  ${pad(c.id, 8)} ${pad(c.title.slice(0, 60), 62)}${cells.join("")}`);
    }
    console.log("");
  }

  // Compression: per subgroup, what was agreed and how well dillws's echoes compressed (informational).
  const z = cases.filter((c) => c.group >= 12 && c.group <= 14);
  if (z.length > 0) {
    console.log("Compression (informational): dillws's compressed echoes, bytes on the wire / inflated, per subgroup");
    console.log(`  ${pad("Subgroup", 10)}${roles.map((r) => lpad(`${r} ratio`, 14)).join("")}  agreed (${roles[0]})`);
    const subs = [...new Set(z.map((c) => c.id.split(".").slice(0, 2).join(".")))];
    for (const sub of subs) {
      let agreed = "";
      const cells = roles.map((r) => {
        const vs = all.get(r)!.filter((v) => v.id.startsWith(`${sub}.`) && v.compression !== undefined);
        const wire = vs.reduce((a, v) => a + v.compression!.wire, 0);
        const plain = vs.reduce((a, v) => a + v.compression!.plain, 0);
        if (agreed === "" && vs.length > 0) agreed = vs[0]!.compression!.agreed;
        return lpad(plain > 0 ? (wire / plain).toFixed(3) : "-", 14);
      });
      console.log(`  ${pad(sub, 10)}${cells.join("")}  ${sub.startsWith("14.") ? "(varies per case)" : agreed}`);
    }
    console.log("");
  }

  const bad = roles.flatMap((r) => all.get(r)!.filter((v) => v.result !== "OK"));
  const failed = bad.filter((v) => v.result === "FAILED");
  if (bad.length === 0) console.log("Every case OK.");
  else {
    console.log(`Cases not OK (${failed.length} FAILED, ${bad.length - failed.length} NON-STRICT):`);
    for (const v of bad) {
      const c = cases.find((x) => x.id === v.id)!;
      console.log(`  ${v.result} [${v.role}] ${v.id} ${v.title}`);
      console.log(`      expected: ${c.expect}`);
      console.log(`      got:      ${v.reason}`);
    }
  }
  const leaked = await leaks();
  if (leaked.length > 0) console.log(`Resources left open after the run: ${leaked.join(", ")}`);
  console.log(`Run time ${secs(Date.now() - t0)}.`);
  if (jsonOut !== undefined) {
    writeFileSync(jsonOut, JSON.stringify({ quick, verdicts: roles.flatMap((r) => all.get(r)!) }, null, 2));
  }
  process.exitCode = failed.length > 0 || leaked.length > 0 ? 1 : 0;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
