/**
 * The vocabulary shared by a room participant (room protocol), the terminal UI and `--json` output:
 * events a chat produces and the session interface the UIs drive. What a user types, and the help
 * that lists it, is the terminal's (`lib/terminal/chat_commands.ts`).
 *
 * Events are plain data: the terminal UI renders them, `--json` prints them one per line (the
 * schema documented in README "JSON events"). Only verified messages ever become `message` events;
 * a message that fails verification becomes a `rejected` event naming the claimed author.
 *
 * @module
 */

/** A room member as the UI shows it. */
export interface MemberInfo {
  name: string;
  fingerprint: string;
  /** True for ourselves. */
  self?: boolean;
  /** True for the member running the relay (the listener's person). */
  host?: boolean;
  /** True for a member who may admit and remove others (docs/PROTOCOL.md 13.3). */
  admin?: boolean;
}

/** Everything a participant reports. `time` is milliseconds since the epoch. */
export type ChatEvent =
  | {
    type: "message";
    time: number;
    /** Author's display name and fingerprint (signature verified against this key). */
    from: MemberInfo;
    text: string;
    /** "text" for a normal line, "action" for /me, "private" for /msg. */
    kind: "text" | "action" | "private";
    /** For private messages: the recipient. */
    to?: MemberInfo;
    /** Always true: unverified messages never become message events. */
    verified: true;
  }
  | {
    type: "join";
    time: number;
    member: MemberInfo;
    /** The admin whose commit added the member (absent for the room's creator). */
    by?: MemberInfo;
  }
  | {
    type: "leave";
    time: number;
    member: MemberInfo;
    /** "left the room", or who removed the member. */
    reason: string;
    /** The admin whose commit removed the member, when it did not leave by itself. */
    by?: MemberInfo;
  }
  | {
    type: "knock";
    time: number;
    /** A newcomer asking to be admitted, by the name it asked for and its fingerprint. */
    member: MemberInfo;
    /** True when we are an admin and may /admit it. */
    canAdmit: boolean;
  }
  | { type: "roster"; time: number; members: MemberInfo[] }
  | {
    type: "verification";
    time: number;
    /** The verification code of our connection to the relay (compare it with the relay's). */
    code: string;
    /** The relay at the other end of our connection. */
    peer: MemberInfo;
    /**
     * The room's epoch code: every member in the same state of the same group sees the same one,
     * so comparing it catches a relay that split the room (docs/PROTOCOL.md 13.7).
     */
    epochCode?: string;
    /** With /verify NAME: the safety number we and that member both compute (13.7). */
    safety?: { member: MemberInfo; number: string };
  }
  | {
    type: "rejected";
    time: number;
    /** Who the message claimed to come from. */
    claimedAuthor: string;
    reason: string;
  }
  | {
    type: "offer";
    time: number;
    /** Short id to /accept, /reject or /cancel it. */
    id: string;
    from: MemberInfo;
    /** The file or folder name the sender gave (sanitized): every path received lies under it. */
    name: string;
    /**
     * The folder name it will be saved as when not `name` (sanitized): a folder offer whose name
     * is taken in the receive folder goes into "NAME (1)", ... (or the one it resumes into).
     */
    saveAs?: string;
    files: number;
    size: number;
    /** The folder it will be saved into. */
    folder: string;
    /** Whether hidden (dot) files inside are accepted (`--allow-hidden-files`) or refused. */
    hidden: "allowed" | "refused";
  }
  | {
    type: "transfer";
    time: number;
    id: string;
    direction: "send" | "receive";
    peer: MemberInfo;
    name: string;
    state: "waiting" | "sending" | "receiving" | "done" | "rejected" | "cancelled" | "failed";
    bytes: number;
    total: number;
    /** Bytes a second over the transfer so far. */
    rate?: number;
    /** Seconds left at that rate. */
    eta?: number;
    /** Where the received files went (receive, done). */
    path?: string;
    /** Why it was rejected, cancelled or failed. */
    reason?: string;
    /** Bytes a resumed transfer did not have to send again. */
    resumed?: number;
  }
  | { type: "notice"; time: number; text: string }
  | { type: "error"; time: number; code: string; message: string }
  | { type: "closed"; time: number; reason: string };

/**
 * A participant in a room, as a chat UI drives it: the same for a member that dialed in and for
 * the host, the person at the listener (lib/room/participant.ts implements it once for both).
 */
export interface Participant {
  /** Our own name and fingerprint. */
  readonly self: MemberInfo;
  /** Subscribes to events; returns an unsubscribe function. */
  onEvent(listener: (event: ChatEvent) => void): () => void;
  /** Sends a line to the room. */
  sendText(text: string): Promise<void>;
  /** Sends a /me action. */
  sendAction(text: string): Promise<void>;
  /** Sends a private message, sealed to the member called `to` (name or fingerprint). */
  sendPrivate(to: string, text: string): Promise<void>;
  /** The current members, ourselves included. */
  members(): MemberInfo[];
  /** The verification event for /verify: the room's, or with `member` also the safety number. */
  verify(member?: string): Promise<ChatEvent & { type: "verification" }>;
  /** An admin lets a newcomer in (name or fingerprint of its knock). */
  admit?(who: string): Promise<void>;
  /** An admin removes a member. */
  kick?(who: string): Promise<void>;
  /** An admin makes a member an admin too (`on`), or no longer one. */
  setAdmin?(who: string, on: boolean): Promise<void>;
  /** Leaves the room (a Remove proposal, then close_notify) and resolves when it is over. */
  close(): Promise<void>;
  /** Resolves when the session ends for any reason. */
  readonly closed: Promise<void>;
  /** The error that ended the session, if one did (for the exit code). */
  failure?(): unknown;
  /** Offers a file or folder to a member (`to`: name or fingerprint; default: the only other). */
  sendFile?(path: string, to?: string): Promise<void>;
  /** Accepts an offer (default: the only pending one). */
  acceptOffer?(id?: string): Promise<void>;
  /** Rejects an offer (default: the only pending one). */
  rejectOffer?(id?: string): Promise<void>;
  /** Cancels a transfer (default: the only active one). */
  cancelTransfer?(id?: string): Promise<void>;
}
