/**
 * React hook over {@link ResilientEventSource}:
 *
 *   const { status, data, events, stop, cursor } = useResilientSSE(streamId);
 *   const { streamId } = useResilientSSE(null, { key: chatId }); // by key
 *
 * Several hooks of one page share one connection (`multiplex: "auto"`).
 * Options are compared by value (functions aside): a new token reconnects, a
 * new object with the same values does not. Unmounting disconnects; `stop()`
 * cancels the stream on the server.
 */

import { useCallback, useEffect, useRef, useState } from "react";

import { streamUrl } from "./requests.js";
import { ResilientEventSource } from "./source.js";
import type { CancelAnswer, SourceOptions, Status, StreamEvent } from "./types.js";

/** Options of {@link useResilientSSE}: a source's, plus where and what to follow. */
export interface UseResilientSSEOptions extends SourceOptions {
  /** The blueprint's URL prefix ("/sse"). */
  prefix?: string;
  /** Follow the signed-in user's latest stream of this key when no stream id is given. */
  key?: string;
}

/** What {@link useResilientSSE} returns. */
export interface ResilientSSEState<T = unknown> {
  /** The source's status, or "none" when the key has no stream. */
  status: Status | "none";
  /** The latest event's data (the result, once terminal). */
  data: T | null;
  /** Every event so far; emptied by `reset`, replaced by a `snapshot`. */
  events: StreamEvent<T>[];
  /** Cancel the stream on the server (resolves to null when none is followed). */
  stop: (reason?: string) => Promise<CancelAnswer | null>;
  /** The stream followed (found by key, or the one given). */
  streamId: string | null;
  /** The cursor: the last event id received. */
  cursor: string | null;
}

function optionsKey(options: UseResilientSSEOptions): string {
  return JSON.stringify(options, (_key, value: unknown) => (typeof value === "function" ? undefined : value));
}

/** Follow `streamId` (or, if null, the latest stream of `options.key`) while mounted. */
export function useResilientSSE<T = unknown>(
  streamId: string | null,
  options: UseResilientSSEOptions = {},
): ResilientSSEState<T> {
  const prefix = options.prefix ?? "/sse";
  const key = optionsKey(options);
  const latest = useRef(options);
  latest.current = options;
  const [status, setStatus] = useState<Status | "none">("connecting");
  const [data, setData] = useState<T | null>(null);
  const [events, setEvents] = useState<StreamEvent<T>[]>([]);
  const [found, setFound] = useState<string | null>(streamId);
  const [cursor, setCursor] = useState<string | null>(options.lastEventId ?? null);
  const sourceRef = useRef<ResilientEventSource<T> | null>(null);

  useEffect(() => {
    const requests = latest.current.key;
    if (!streamId && !requests) return undefined;
    let closed = false;
    setStatus("connecting");
    setData(null);
    setEvents([]);
    const given = latest.current;
    const sourceOptions: SourceOptions = {
      ...given,
      getToken: given.getToken ? () => latest.current.getToken?.() : null,
    };
    const attach = (id: string): void => {
      setFound(id);
      const source = new ResilientEventSource<T>(streamUrl(prefix, id), sourceOptions);
      sourceRef.current = source;
      source.onstatus = setStatus;
      source.onevent = (typed) => {
        setCursor(source.cursor);
        if (typed.type === "reset") return setEvents([]);
        if (typed.type === "snapshot") {
          setEvents([typed]);
          return setData(typed.data);
        }
        setEvents((previous) => [...previous, typed]);
        setData(typed.data);
      };
      setStatus(source.status);
    };
    if (streamId) attach(streamId);
    else if (requests) {
      ResilientEventSource.findKey(prefix, requests, sourceOptions).then(
        (hit) => {
          if (closed) return;
          if (!hit) return setStatus("none");
          attach(hit.streamId);
        },
        () => {
          if (!closed) setStatus("error");
        },
      );
    }
    return () => {
      closed = true;
      sourceRef.current?.close();
      sourceRef.current = null;
    };
  }, [streamId, prefix, key]);

  const stop = useCallback(
    (reason?: string) => (sourceRef.current ? sourceRef.current.cancel(reason) : Promise.resolve(null)),
    [],
  );

  return { status, data, events, stop, streamId: found, cursor };
}
