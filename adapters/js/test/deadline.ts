/** Waiting in tests: on a promise or an event, with a deadline, never a bare sleep. */

/** `promise`, or a rejection naming `what` after `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

type On<E> = (listener: (payload: E) => void) => () => void;

/** The first payload of an event for which `accept` holds, within `ms`. */
export function next<E>(on: On<E>, accept: (payload: E) => boolean, ms: number, what: string): Promise<E> {
  let off = (): void => {};
  const seen = new Promise<E>((resolve) => {
    off = on((payload) => {
      if (accept(payload)) resolve(payload);
    });
  });
  return within(seen, ms, what).finally(() => off());
}
