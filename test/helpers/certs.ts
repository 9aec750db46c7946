// Test certificates, made with the openssl command in a temporary directory:
// a CA, a leaf it signed for localhost/127.0.0.1/::1 (server and client use),
// a self-signed leaf, and a second CA that signed nothing the tests trust.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestCerts {
  dir: string;
  /** The CA that signed `cert`. */
  ca: string;
  /** A key and certificate for localhost, 127.0.0.1 and ::1, signed by `ca`. */
  key: string;
  cert: string;
  /** A self-signed key and certificate for localhost. */
  selfKey: string;
  selfCert: string;
  /** A CA that signed nothing here. */
  otherCa: string;
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

function makeCa(dir: string, name: string): void {
  openssl(dir, ["req", "-x509", ...EC, "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "3650",
    "-subj", `/CN=dillws test ${name}`, "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
}

/** Makes the certificates (a few tens of ms); remove them with removeCerts. */
export function makeCerts(): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), "dillws-certs-"));
  try {
    makeCa(dir, "ca");
    makeCa(dir, "other");
    openssl(dir, ["req", "-new", ...EC, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost"]);
    writeFileSync(join(dir, "leaf.ext"),
      "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth,clientAuth\n");
    openssl(dir, ["x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "2",
      "-days", "3650", "-extfile", "leaf.ext", "-out", "leaf.pem"]);
    openssl(dir, ["req", "-x509", ...EC, "-keyout", "self.key", "-out", "self.pem", "-days", "3650",
      "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const r = (f: string): string => readFileSync(join(dir, f), "utf8");
  return {
    dir, ca: r("ca.pem"), key: r("leaf.key"), cert: r("leaf.pem"),
    selfKey: r("self.key"), selfCert: r("self.pem"), otherCa: r("other.pem"),
  };
}

export function removeCerts(c: TestCerts | undefined): void {
  if (c !== undefined) rmSync(c.dir, { recursive: true, force: true });
}
