/** Edge mode's pool defaults, shared by the pool and the board.json schema (firmware/config/schema-uplink.ts). */

/** edgeHub's MaxConnectedClients: upstream connections held at once, one per active identity. */
export const CLOUD_CONNECTIONS_MAX_DEFAULT = 100;
/**
 * edgeHub's CloudConnectionIdleTimeoutSecs (3600 in its code; some of its docs say 300): an identity without
 * traffic this long has its connection closed.
 */
export const CLOUD_CONNECTION_IDLE_SECS_DEFAULT = 3_600;
/**
 * New upstream connections per second, all identities together. IoT Hub throttles device connects per unit
 * (S1: 100/s per hub at least, shared with every other gateway of the hub); a gateway with 100 children
 * opening 100 TLS sessions in one second over a cellular link also starves its own traffic. 20/s connects
 * 50 children in 2.5 s.
 */
export const CLOUD_CONNECTS_PER_SEC_MAX_DEFAULT = 20;
