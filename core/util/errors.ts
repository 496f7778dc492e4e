// The one error table of qstora (house style, errors kind 3: operating errors at the edges).
// Each code has a stable name, a CLI exit status, an HTTP status for the control API and,
// where it reaches an initiator, SCSI sense (key/ASC/ASCQ, SPC-4 tables 27 and 28).
// Match on `code`, never on message text. Messages say what went wrong and what to do next.

export interface ErrorSpec {
  readonly exit: number;
  readonly http: number;
  /** SCSI sense key / additional sense code / qualifier, when the error can reach an initiator. */
  readonly sense?: { readonly key: number; readonly asc: number; readonly ascq: number };
  readonly summary: string;
}

// Exit statuses follow the spirit of BSD sysexits: 0 ok, 1 generic, 2 usage, then ours.
export const errorTable = {
  INTERNAL: { exit: 1, http: 500, summary: "internal error (a bug: please report it with the log)", sense: { key: 0x04, asc: 0x44, ascq: 0x00 } },
  USAGE: { exit: 2, http: 400, summary: "bad command line or request" },
  INVALID_ARGUMENT: { exit: 2, http: 400, summary: "an argument has a bad value" },
  NOT_FOUND: { exit: 3, http: 404, summary: "the named object does not exist" },
  ALREADY_EXISTS: { exit: 4, http: 409, summary: "the named object exists already" },
  IN_USE: { exit: 5, http: 409, summary: "the object is in use and cannot be changed or removed" },
  DAEMON_UNAVAILABLE: { exit: 6, http: 503, summary: "the qstora daemon is not running or not answering" },
  NOT_INITIALIZED: { exit: 7, http: 409, summary: "the data directory holds no qstora node" },
  ALREADY_INITIALIZED: { exit: 8, http: 409, summary: "the data directory already holds a qstora node" },
  NO_SPACE: { exit: 9, http: 507, summary: "not enough space in the archives", sense: { key: 0x07, asc: 0x27, ascq: 0x07 } },
  IO_ERROR: { exit: 10, http: 500, summary: "an I/O operation failed", sense: { key: 0x04, asc: 0x0c, ascq: 0x00 } },
  MEDIUM_ERROR: { exit: 10, http: 500, summary: "stored data failed its checksum", sense: { key: 0x03, asc: 0x11, ascq: 0x00 } },
  CONFIG_INVALID: { exit: 11, http: 400, summary: "the configuration file has a bad value" },
  ARCHIVE_INVALID: { exit: 12, http: 409, summary: "the archive is not usable (foreign, corrupt or unwritable)" },
  LOCKED: { exit: 13, http: 409, summary: "another daemon holds the data directory" },
  PERMISSION_DENIED: { exit: 14, http: 403, summary: "not allowed" },
  UNAUTHENTICATED: { exit: 14, http: 401, summary: "the request carried no valid credentials" },
  METADATA_UNAVAILABLE: { exit: 15, http: 503, summary: "the metadata store is not reachable" },
  TIMEOUT: { exit: 16, http: 504, summary: "the operation timed out" },
  // NOT READY, ASYMMETRIC ACCESS STATE TRANSITION (SPC-4 §5.15.2.6): initiators retry it.
  MOVED: { exit: 17, http: 409, summary: "the LUN is coordinated by another node now", sense: { key: 0x02, asc: 0x04, ascq: 0x0a } },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof errorTable;

export class QstoraError extends Error {
  override name = "QstoraError";
  readonly code: ErrorCode;
  /** A second line: what to do next. */
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, hint?: string) {
    super(message);
    this.code = code;
    this.hint = hint;
  }

  get spec(): ErrorSpec {
    return errorTable[this.code];
  }

  toJSON(): { code: ErrorCode; message: string; hint?: string } {
    return this.hint === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, hint: this.hint };
  }
}

export function isQstoraError(e: unknown): e is QstoraError {
  return e instanceof QstoraError;
}

export function isErrorCode(x: unknown): x is ErrorCode {
  return typeof x === "string" && Object.hasOwn(errorTable, x);
}
