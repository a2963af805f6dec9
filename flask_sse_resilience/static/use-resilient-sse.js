// Built from clients/js/src by `npm run build` (flask-sse-resilience); do not edit.
var __defProp = Object.defineProperty;
var __defProps = Object.defineProperties;
var __getOwnPropDescs = Object.getOwnPropertyDescriptors;
var __getOwnPropSymbols = Object.getOwnPropertySymbols;
var __hasOwnProp = Object.prototype.hasOwnProperty;
var __propIsEnum = Object.prototype.propertyIsEnumerable;
var __defNormalProp = (obj, key, value) => key in obj ? __defProp(obj, key, { enumerable: true, configurable: true, writable: true, value }) : obj[key] = value;
var __spreadValues = (a, b) => {
  for (var prop in b || (b = {}))
    if (__hasOwnProp.call(b, prop))
      __defNormalProp(a, prop, b[prop]);
  if (__getOwnPropSymbols)
    for (var prop of __getOwnPropSymbols(b)) {
      if (__propIsEnum.call(b, prop))
        __defNormalProp(a, prop, b[prop]);
    }
  return a;
};
var __spreadProps = (a, b) => __defProps(a, __getOwnPropDescs(b));

// src/react.ts
import { useCallback, useEffect, useRef, useState } from "react";
import { streamUrl } from "./sse-resilience.mjs";
import { ResilientEventSource } from "./sse-resilience.mjs";
function optionsKey(options) {
  return JSON.stringify(options, (_key, value) => typeof value === "function" ? void 0 : value);
}
function useResilientSSE(streamId, options = {}) {
  var _a, _b;
  const prefix = (_a = options.prefix) != null ? _a : "/sse";
  const key = optionsKey(options);
  const latest = useRef(options);
  latest.current = options;
  const [status, setStatus] = useState("connecting");
  const [data, setData] = useState(null);
  const [events, setEvents] = useState([]);
  const [found, setFound] = useState(streamId);
  const [cursor, setCursor] = useState((_b = options.lastEventId) != null ? _b : null);
  const sourceRef = useRef(null);
  useEffect(() => {
    const requests = latest.current.key;
    if (!streamId && !requests) return void 0;
    let closed = false;
    setStatus("connecting");
    setData(null);
    setEvents([]);
    const given = latest.current;
    const sourceOptions = __spreadProps(__spreadValues({}, given), {
      getToken: given.getToken ? () => {
        var _a2, _b2;
        return (_b2 = (_a2 = latest.current).getToken) == null ? void 0 : _b2.call(_a2);
      } : null
    });
    const attach = (id) => {
      setFound(id);
      const source = new ResilientEventSource(streamUrl(prefix, id), sourceOptions);
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
        }
      );
    }
    return () => {
      var _a2;
      closed = true;
      (_a2 = sourceRef.current) == null ? void 0 : _a2.close();
      sourceRef.current = null;
    };
  }, [streamId, prefix, key]);
  const stop = useCallback(
    (reason) => sourceRef.current ? sourceRef.current.cancel(reason) : Promise.resolve(null),
    []
  );
  return { status, data, events, stop, streamId: found, cursor };
}
export {
  useResilientSSE
};
