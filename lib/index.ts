// dillws: libdill-style handles, absolute deadlines and errno errors for Node.js.
export { now } from "./runtime/time";
export { msleep, type CallOptions } from "./runtime/wait";
export { DillError, type ErrorCode } from "./runtime/errors";
export {
  hclose,
  type Handle, type TcpHandle, type IpcHandle, type TcpListener, type IpcListener, type ByteHandle,
  type WsHandle, type MsgHandle, type CoHandle, type BundleHandle, type TlsHandle,
} from "./runtime/handles";
export { go, bundle, bundleGo, bundleWait, type CoroutineFn } from "./runtime/coroutine";
export {
  IpAddr, IPADDR_IPV4, IPADDR_IPV6, IPADDR_PREF_IPV4, IPADDR_PREF_IPV6,
  ipaddrLocal, ipaddrRemote, ipaddrPort, ipaddrStr,
} from "./net/ipaddr";
export {
  tcpListen, tcpAccept, tcpConnect, tcpLocalAddr, tcpRemoteAddr, tcpDone, tcpClose, tcpIncoming, tcpFromSocket,
} from "./net/tcp";
export { ipcListen, ipcAccept, ipcConnect, ipcDone, ipcClose, ipcIncoming, ipcPair } from "./net/ipc";
export { bsend, bsendl, brecv } from "./net/bytes";
export {
  tlsAttachClient, tlsAttachServer, tlsDone, tlsDetach, tlsInfo,
  type TlsClientOptions, type TlsServerOptions, type TlsInfo,
} from "./net/tls";
export { WS_BINARY, WS_TEXT, WS_NOHTTP, type WsMessage } from "./ws/message";
export type { WsStream } from "./ws/message-stream";
export type { CompressionOption, DeflateOptions, DeflateParams } from "./ws/core/deflate-params";
export {
  wsAttachClient, wsAttachServer,
  type WsAttachClientOptions, type WsAttachServerOptions, type WsAttachServerResult, type WsRefusal, type WsRequest, type WsVerdict,
} from "./ws/attach";
export {
  wsSend, wsSendl, wsRecv, wsRecvStream, wsMessages, wsCompression, type WsSendOptions, wsDone, wsDetach, wsStatus, wsProtocol, wsPing,
  wsRequestKey, wsResponseKey, msend, mrecv, type WsPayload,
} from "./ws/api";
export { wsConnect, type WsConnectOptions } from "./ws/connect";
export { wsAttachUpgrade } from "./ws/upgrade";
export { wsBroadcast, type WsBroadcastResult } from "./ws/broadcast";
