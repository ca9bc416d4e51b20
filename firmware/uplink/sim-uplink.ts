import { SIM_TELEMETRY_TOPIC_TEMPLATE } from '../side-channel.js';
import type { SimUplinkConfig } from './config.js';
import type { UplinkService, UplinkServiceOptions } from './service-types.js';

/**
 * The sim board's uplink: the real mqtt uplink (`startMqtt`, service.ts's startUplink), to an embedded broker
 * behind a link that drops on a cycle (firmware/sim). SIGUSR1 flips the link by hand; when it comes back the
 * pump is woken as a modem hook would.
 */
export async function startSimUplink(
  opts: UplinkServiceOptions,
  config: SimUplinkConfig,
  startMqtt: (opts: UplinkServiceOptions) => Promise<UplinkService>,
): Promise<UplinkService> {
  const { linkUpSecs, linkDownSecs, protocol: _sim, ...common } = config;
  let service: UplinkService | null = null;
  // Imported only on the sim board: the embedded broker (aedes) is no part of a real gateway's memory.
  const { SimCloud } = await import('../sim/cloud.js');
  const cloud = await SimCloud.start({
    gatewayId: opts.gatewayId,
    linkUpSecs,
    linkDownSecs,
    onLinkUp: () => service?.wake('sim link up'),
  });
  const toggle = () => cloud.toggleLink();
  process.on('SIGUSR1', toggle);
  try {
    service = await startMqtt({
      ...opts,
      files: undefined,
      config: {
        ...common,
        protocol: 'mqtt',
        url: cloud.url,
        username: undefined,
        password: undefined,
        topicTemplate: SIM_TELEMETRY_TOPIC_TEMPLATE,
        configTopic: undefined,
        protocolVersion: 4,
      },
    });
  } catch (err) {
    process.off('SIGUSR1', toggle);
    await cloud.stop();
    throw err;
  }
  const mqttService = service;
  return {
    protocol: 'sim',
    status: () => ({ ...mqttService.status(), protocol: 'sim', simCloud: cloud.status() }),
    wake: (reason) => mqttService.wake(reason),
    addResyncHook: (hook) => mqttService.addResyncHook(hook),
    bandwidth: mqttService.bandwidth,
    async stop(budgetMs) {
      process.off('SIGUSR1', toggle);
      await mqttService.stop(budgetMs);
      await cloud.stop();
    },
  };
}
