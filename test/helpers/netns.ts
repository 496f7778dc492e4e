// A network namespace joined to the host by a veth pair, for tests that cut a node off (issue 4's
// partition test, issue 5's cut-off primary): the node inside runs every command through `wrap`
// (ip netns exec NS), the others listen on addresses of the host's end. cut() takes the
// namespace's end of the link down (nothing passes either way, while processes inside the
// namespace still reach one another), heal() brings it up. Needs root. Names are <prefix>-<tag>
// for the namespace, and short ones for the links (an interface name is at most 15 bytes); the
// subnet is a random /29 of 10.254/16: the namespace's address is .2, the host's .1, .3, .4, .5, .6.
import { run } from "./node.ts";

function sh(...cmd: string[]): void {
  const r = run(cmd, { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} failed (${r.code}): ${r.stderr}`);
}

export class NetnsLink {
  readonly ns: string;
  readonly hostIf: string;
  readonly nsIf: string;
  readonly nsAddress: string;
  /** Addresses on the host's end: at most five (.1, .3, .4, .5, .6 of the /29). */
  readonly hostAddresses: string[];
  /** Prefix of a command run inside the namespace. */
  readonly wrap: string[];

  /** `linkPrefix` is at most 3 characters (the interfaces are <linkPrefix>h<tag>, <linkPrefix>n<tag>). */
  constructor(options: { nsPrefix: string; linkPrefix: string; hostAddresses: number }) {
    if (options.linkPrefix.length > 3) throw new Error("linkPrefix is at most 3 characters");
    if (options.hostAddresses < 1 || options.hostAddresses > 5) throw new Error("a /29 holds 1 to 5 host addresses beside the namespace's");
    const tag = `${process.pid.toString(16)}${Math.floor(Math.random() * 0xfff).toString(16)}`.slice(-6);
    const subnet = `10.254.${1 + Math.floor(Math.random() * 250)}`;
    this.ns = `${options.nsPrefix}-${tag}`;
    this.hostIf = `${options.linkPrefix}h${tag}`;
    this.nsIf = `${options.linkPrefix}n${tag}`;
    this.nsAddress = `${subnet}.2`;
    this.hostAddresses = [1, 3, 4, 5, 6].slice(0, options.hostAddresses).map((i) => `${subnet}.${i}`);
    this.wrap = ["ip", "netns", "exec", this.ns];
  }

  setup(): void {
    if (process.getuid?.() !== 0) throw new Error("this test needs root (ip netns, ip link): run it as root, as npm test does in CI");
    sh("ip", "netns", "add", this.ns);
    sh("ip", "link", "add", this.hostIf, "type", "veth", "peer", "name", this.nsIf);
    sh("ip", "link", "set", this.nsIf, "netns", this.ns);
    for (const a of this.hostAddresses) sh("ip", "addr", "add", `${a}/29`, "dev", this.hostIf);
    sh("ip", "link", "set", this.hostIf, "up");
    sh(...this.wrap, "ip", "addr", "add", `${this.nsAddress}/29`, "dev", this.nsIf);
    sh(...this.wrap, "ip", "link", "set", this.nsIf, "up");
    sh(...this.wrap, "ip", "link", "set", "lo", "up");
  }

  cut(): void {
    sh(...this.wrap, "ip", "link", "set", this.nsIf, "down");
  }

  heal(): void {
    sh(...this.wrap, "ip", "link", "set", this.nsIf, "up");
  }

  /** Removes the namespace and the link, whatever state they are in. */
  teardown(): void {
    // Deleting the namespace deletes its end of the veth, and with it the host's end.
    run(["ip", "netns", "del", this.ns]);
    run(["ip", "link", "del", this.hostIf]);
  }
}
