import { expect, test } from "bun:test";
import { decodeSnapshot, encodeSnapshot } from "./reservations.ts";

test("a reservation snapshot survives its JSON form, 64-bit keys included", () => {
  const s = {
    generation: 7,
    registrations: [
      { nexusId: "n1", initiatorPort: "iqn.2026-11.org.x:a,i,0x23d000000001", relativePortId: 1, key: 0xfedcba9876543210n },
      { nexusId: "n2", initiatorPort: "iqn.2026-11.org.x:b,i,0x23d000000002", relativePortId: 1, key: 1n },
    ],
    reservation: { holder: "n1", type: 5 },
  };
  expect(decodeSnapshot(encodeSnapshot(s))).toEqual(s);
  expect(decodeSnapshot(encodeSnapshot({ ...s, reservation: null })).reservation).toBeNull();
});
