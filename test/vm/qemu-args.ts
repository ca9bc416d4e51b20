// The qemu command line of the field VM (test/vm/vm.ts boots it): machine, kernel, disks (the data disk optionally
// behind blklogwrites), the control and UART sockets, the user network with its forwards, the 9p share.
import { join } from 'node:path';

/** The guest address that guest forwards answer on (inside qemu's user network; nothing leaves the host). */
export const GUEST_HOST_ADDRESS = '10.0.2.100';

export interface PortForward {
  /** Port on 127.0.0.1 of the host. */
  hostPort: number;
  /** Port inside the guest. */
  guestPort: number;
}

/** Debian's name for the guest's architecture (build-image.sh's argument). */
export type VmArch = 'amd64' | 'arm64';

/** The qemu binary that runs a guest of each architecture (TCG on any host). */
export const QEMU_BINARY: Record<VmArch, string> = { amd64: 'qemu-system-x86_64', arm64: 'qemu-system-aarch64' };

/**
 * The guest's device for the UART on `Vm.uartPath`: a second 16550 on x86; on arm64 the virt machine's one
 * PL011, which is the UART a Pi's GPS hat uses too (serial0 is ttyAMA0 with Bluetooth off).
 */
export const GUEST_UART: Record<VmArch, string> = { amd64: '/dev/ttyS1', arm64: '/dev/ttyAMA0' };

export interface VmOptions {
  /** Folder made by build-image.sh (vmlinuz, initrd.img, root.ext4). */
  image: string;
  /** The image's architecture. Default amd64. */
  arch?: VmArch;
  /** Per-VM folder: the root overlay, the data disk, sockets and the console log go here. */
  workDir: string;
  /** Host folder mounted read-only at /mnt/host in the guest. */
  share?: string;
  /** Host 127.0.0.1:hostPort reaches guestPort inside (e.g. the gateway's hub). */
  hostForwards?: PortForward[];
  /** Guest 10.0.2.100:guestPort reaches host 127.0.0.1:hostPort (e.g. a broker on the host). */
  guestForwards?: PortForward[];
  /** Size of the data disk (/dev/vdb, mounted at /var/lib/outpost), created empty on first boot. */
  dataDiskMiB?: number;
  /**
   * Puts the data disk behind qemu's blklogwrites driver: every write and flush the guest sends to /dev/vdb is
   * appended to this file in dm-log-writes format (test/vm/replay.ts reads it). A copy of the data disk as it
   * was before the boot is kept beside it (`dataBasePath`), the state the log's writes apply to.
   */
  dataLogPath?: string;
  memoryMiB?: number;
  /**
   * Virtual CPUs. Default 1: with two, a host with more runnable threads than cores preempts one vCPU while the
   * other spins on a lock or waits for an IPI it holds, and the guest stalls for tens of seconds (soft lockups and
   * RCU stalls in the console of a reboot at load 16). One vCPU cannot wait on another.
   */
  cpus?: number;
}

export function qemuArgs(opts: VmOptions, overlay: string, data: string): string[] {
  const w = opts.workDir;
  const net = ['user', 'id=n0', 'restrict=on'];
  for (const f of opts.hostForwards ?? []) net.push(`hostfwd=tcp:127.0.0.1:${f.hostPort}-:${f.guestPort}`);
  // A cmd: guest forward starts one socat per guest connection (a tcp: chardev would carry only the first one).
  for (const f of opts.guestForwards ?? []) {
    net.push(`guestfwd=tcp:${GUEST_HOST_ADDRESS}:${f.guestPort}-cmd:socat - TCP:127.0.0.1:${f.hostPort}`);
  }
  const machine = MACHINES[opts.arch ?? 'amd64'];
  const args = [
    '-machine',
    machine.machine,
    '-cpu',
    machine.cpu,
    '-smp',
    String(opts.cpus ?? 1),
    '-m',
    String(opts.memoryMiB ?? 1024),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    '-kernel',
    join(opts.image, 'vmlinuz'),
    '-initrd',
    join(opts.image, 'initrd.img'),
    // The guest's clock runs at the host's pace while a loaded host gives it a sliver of a core: systemd's and
    // udev's default timeouts (90 s, 180 s) would fail a boot that is merely slow.
    '-append',
    `root=/dev/vda rw console=${machine.console} panic=-1 quiet systemd.show_status=0 ` +
      'systemd.default_timeout_start_sec=600 udev.event_timeout=600',
    // Appended to, so the console of every boot is kept (a reboot starts qemu again).
    '-chardev',
    `file,id=console,path=${join(w, 'console.log')},append=on`,
    '-chardev',
    `socket,id=uart1,path=${join(w, 'uart1.sock')},server=on,wait=off`,
    '-device',
    'virtio-serial-pci',
    ...machine.serials,
    // Both disks as explicit devices in this order, so the root is vda and the data disk vdb whatever drives them.
    '-blockdev',
    `driver=qcow2,node-name=root,file.driver=file,file.filename=${overlay}`,
    '-device',
    'virtio-blk-pci,drive=root',
    ...dataDiskArgs(data, opts.dataLogPath),
    '-chardev',
    `socket,id=ctl,path=${join(w, 'ctl.sock')},server=on,wait=off`,
    '-device',
    'virtserialport,chardev=ctl,name=org.outpost.ctl',
    '-netdev',
    net.join(','),
    '-device',
    'virtio-net-pci,netdev=n0',
  ];
  if (opts.share) args.push('-virtfs', `local,path=${opts.share},mount_tag=host,security_model=none,readonly=on`);
  return args;
}

interface Machine {
  machine: string;
  cpu: string;
  /** The kernel's console= device. */
  console: string;
  /** Where the `console` and `uart1` chardevs go. */
  serials: string[];
}

const MACHINES: Record<VmArch, Machine> = {
  // ttyS0 is the console, ttyS1 the UART: two 16550s on the ISA bus.
  amd64: {
    machine: 'q35,accel=tcg',
    cpu: 'max',
    console: 'ttyS0',
    serials: ['-serial', 'chardev:console', '-serial', 'chardev:uart1'],
  },
  // A Pi 4's core (a plain ARMv8.0 model is also cheaper under TCG than `max`, which emulates pointer
  // authentication). The virt machine has one PL011 (qemu 7.2): it is the UART, and the console is a virtio
  // console (hvc0), port 0 of the virtio-serial bus the control port is on.
  arm64: {
    machine: 'virt,accel=tcg',
    cpu: 'cortex-a72',
    console: 'hvc0',
    serials: ['-serial', 'chardev:uart1', '-device', 'virtconsole,chardev=console'],
  },
};

/** The data disk as it was before the boot that logged its writes (see VmOptions.dataLogPath). */
export function dataBasePath(workDir: string): string {
  return join(workDir, 'data-base.ext4');
}

function dataDiskArgs(data: string, log: string | undefined): string[] {
  const raw = (nodeName: string): string => `driver=raw,node-name=${nodeName},file.driver=file,file.filename=${data}`;
  if (!log) return ['-blockdev', raw('data'), '-device', 'virtio-blk-pci,drive=data'];
  // Sector size 512: the log then records each write at the granularity a torn write can have on a disk.
  return [
    '-blockdev',
    raw('data-raw'),
    '-blockdev',
    `driver=file,node-name=data-log,filename=${log}`,
    '-blockdev',
    'driver=blklogwrites,node-name=data,file=data-raw,log=data-log,log-sector-size=512',
    '-device',
    'virtio-blk-pci,drive=data',
  ];
}
