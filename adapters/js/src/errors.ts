/**
 * Typed errors, one for one with the Python engine's `engine/errors.py`: the same class
 * names, their data as camelCase fields, so an edge can map them without parsing messages.
 */

/** Base class of every error the documents raise on purpose. */
export class EngineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Raised when a value offered to a document breaks a documented rule; `field` names the input, `reason` the rule. */
export class ValidationError extends EngineError {
  readonly field: string;
  readonly reason: string;
  constructor(field: string, reason: string) {
    super(`${field}: ${reason}`);
    this.field = field;
    this.reason = reason;
  }
}

/** Raised when a cart operation names a line the replica has never observed. */
export class UnknownLine extends EngineError {
  readonly lineKey: string;
  constructor(lineKey: string) {
    super(`no line ${JSON.stringify(lineKey)} in this cart`);
    this.lineKey = lineKey;
  }
}

/**
 * Raised when editing (or merging, or checking out) a cart that is closed. `state` says how it
 * closed and `target` where it went: "merged" into the cart `target` (also `mergedInto`, as
 * before), or "checked_out" into the order `target` (also `order`; `mergedInto` is then null).
 * `new CartClosed(mergedInto)` still means a merged cart.
 */
export class CartClosed extends EngineError {
  readonly state: "merged" | "checked_out";
  readonly target: string;
  readonly mergedInto: string | null;
  readonly order: string | null;
  constructor(mergedInto: string | null = null, options: { state?: "merged" | "checked_out"; target?: string } = {}) {
    const state = options.state ?? "merged";
    const target = options.target ?? mergedInto ?? "";
    super(state === "checked_out"
      ? `cart was checked out into order ${JSON.stringify(target)} and no longer accepts edits`
      : `cart was merged into ${JSON.stringify(target)} and no longer accepts edits`);
    this.state = state;
    this.target = target;
    this.mergedInto = state === "merged" ? target : null;
    this.order = state === "checked_out" ? target : null;
  }
}

/** Raised when a guest cart already merged into one cart is merged into another. */
export class AlreadyMerged extends EngineError {
  readonly mergedInto: string;
  readonly requested: string;
  constructor(mergedInto: string, requested: string) {
    super(`cart was already merged into ${JSON.stringify(mergedInto)}, not ${JSON.stringify(requested)}`);
    this.mergedInto = mergedInto;
    this.requested = requested;
  }
}

/** Raised when an adjustment id is reused with a different body. */
export class DuplicateAdjustment extends EngineError {
  readonly adjustmentId: string;
  constructor(adjustmentId: string) {
    super(`adjustment ${JSON.stringify(adjustmentId)} already exists with a different body`);
    this.adjustmentId = adjustmentId;
  }
}

/** Raised when a count id is reused with a different body. */
export class DuplicateCount extends EngineError {
  readonly countId: string;
  constructor(countId: string) {
    super(`count ${JSON.stringify(countId)} already exists with a different body`);
    this.countId = countId;
  }
}

/** Raised when resolving a conflict that is not open on this replica. */
export class UnknownConflict extends EngineError {
  readonly conflictId: string;
  constructor(conflictId: string) {
    super(`no open conflict ${JSON.stringify(conflictId)}`);
    this.conflictId = conflictId;
  }
}

/** Raised when a resolution id is reused for a different decision. */
export class DuplicateResolution extends EngineError {
  readonly resolutionId: string;
  constructor(resolutionId: string) {
    super(`resolution ${JSON.stringify(resolutionId)} already exists with a different decision`);
    this.resolutionId = resolutionId;
  }
}

/** Raised when moving an order whose checkout content this replica does not hold. */
export class OrderNotPlaced extends EngineError {
  readonly orderId: string;
  constructor(orderId: string) {
    super(`order ${JSON.stringify(orderId)} has not been placed`);
    this.orderId = orderId;
  }
}

/** Raised when an order's stage or payment cannot move from `current` to `requested`. */
export class TransitionRefused extends EngineError {
  readonly kind: string;
  readonly current: string;
  readonly requested: string;
  readonly reason: string;
  constructor(kind: string, current: string, requested: string, reason: string) {
    super(`${kind} ${current} -> ${requested} refused: ${reason}`);
    this.kind = kind;
    this.current = current;
    this.requested = requested;
    this.reason = reason;
  }
}
