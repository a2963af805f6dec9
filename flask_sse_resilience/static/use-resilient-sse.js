// React hook over ResilientEventSource, with the seed's return shape.
// React is not a dependency of flask-sse-resilience: copy this file into your
// app (or import it from /sse/static/use-resilient-sse.js with an import map
// that provides "react").
//
//   const { status, data, events, stop } = useResilientSSE(streamId);
//   const { streamId } = useResilientSSE(null, { key: chatId });  // by key
//
// status: "connecting" | "connected" | "reconnecting" | "completed" | "failed"
//         | "cancelled" | "error" | "none" (no stream for the key)
// data:   the data of the latest event (the result, once terminal)
// events: every event so far ({id, type, data}), reset on a "reset" event;
//         a "snapshot" event (a late joiner) replaces them all
// stop:   stop(reason) cancels the stream on the server (the Stop button);
//         unmounting only disconnects
import { useCallback, useEffect, useRef, useState } from "react";
import { ResilientEventSource } from "./sse-resilience.mjs";

// Options are compared by value (functions aside): a new token, say,
// reconnects; a new object with the same values does not.
function optionsKey(options) {
  return JSON.stringify(options, (key, value) => (typeof value === "function" ? undefined : value));
}

export function useResilientSSE(streamId, options = {}) {
  const prefix = options.prefix || "/sse";
  const key = optionsKey(options);
  const [status, setStatus] = useState("connecting");
  const [data, setData] = useState(null);
  const [events, setEvents] = useState([]);
  const [found, setFound] = useState(null);
  const sourceRef = useRef(null);

  useEffect(() => {
    if (!streamId && !options.key) return undefined;
    let closed = false;
    setStatus("connecting");
    setData(null);
    setEvents([]);
    const attach = (source) => {
      sourceRef.current = source;
      source.onstatus = setStatus;
      source.onevent = (event) => {
        if (event.type === "reset") {
          setEvents([]);
          return;
        }
        if (event.type === "snapshot") {
          setEvents([event]);
          setData(event.data);
          return;
        }
        setEvents((previous) => [...previous, event]);
        setData(event.data);
      };
      setStatus(source.status);
    };
    if (streamId) {
      setFound(streamId);
      attach(new ResilientEventSource(`${prefix}/streams/${streamId}`, options));
    } else {
      ResilientEventSource.findKey(prefix, options.key, options).then(
        (hit) => {
          if (closed) return;
          if (!hit) return setStatus("none");
          setFound(hit.streamId);
          attach(new ResilientEventSource(`${prefix}/streams/${hit.streamId}`, options));
        },
        () => !closed && setStatus("error")
      );
    }
    return () => {
      closed = true;
      if (sourceRef.current) sourceRef.current.close();
      sourceRef.current = null;
    };
    // `key` stands for `options`: the effect reruns when their values change.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [streamId, prefix, key]);

  const stop = useCallback(
    (reason) => (sourceRef.current ? sourceRef.current.cancel(reason) : Promise.resolve(null)),
    []
  );

  return { status, data, events, stop, streamId: found };
}
