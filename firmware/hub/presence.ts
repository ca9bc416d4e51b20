/**
 * Children coming and going at the local hub, for whoever must follow them: edge mode opens a child's
 * upstream connection while the child is here and mirrors its subscriptions there (firmware/uplink/edge/cloud.ts).
 */

export type ChildEvent =
  { id: string; kind: 'connected' | 'disconnected' } | { id: string; kind: 'subscribed'; filter: string };

export class ChildEvents {
  private readonly listeners = new Set<(event: ChildEvent) => void>();

  constructor(private readonly onError: (err: Error) => void) {}

  on(listener: (event: ChildEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A listener's failure is reported, never thrown into the MQTT server's event handlers. */
  emit(event: ChildEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.onError(err as Error);
      }
    }
  }
}
