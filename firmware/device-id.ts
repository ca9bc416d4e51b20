/**
 * IoT Hub device (and module) ids: up to 128 ASCII letters, digits and `- . : _ @ ! ( ) , = $ ' % * ?`.
 * IoT Hub's own rules, minus nothing; `/`, `+` and `#` are not among them, so an id is always one MQTT topic
 * level. Board files, scope documents and routes all check ids against this one pattern.
 */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9\-.:_@!(),=$'%*?]{1,128}$/;

/** A module input's or output's name (`$.on`, `/inputs/<name>`, a route's `/outputs/<name>`). */
export const IO_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
