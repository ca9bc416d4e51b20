import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { tempDir } from './tmp.js';

/** A stand-in for systemd's notify socket: perl (in every Debian) receives the datagrams, one line each. */
export function notifySocket(t: Parameters<typeof tempDir>[0]): {
  path: string;
  messages(): string[];
  ready: Promise<void>;
} {
  const path = join(tempDir(t), 'notify.sock');
  // recv() without a control buffer closes the fd systemd-notify passes for BARRIER=1, which ends its wait.
  const script =
    'socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die; bind($s, pack_sockaddr_un($ARGV[0])) or die "bind: $!"; ' +
    '$|=1; print "listening\\n"; ' +
    'while (defined(recv($s, my $b, 4096, 0))) { $b =~ s/\\n/|/g; print "$b\\n"; }';
  const proc = spawn('perl', ['-MSocket', '-e', script, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => void proc.kill());
  const lines: string[] = [];
  let buffer = '';
  const ready = new Promise<void>((resolve) => {
    proc.stdout.on('data', (d: Buffer) => {
      buffer += d.toString();
      const parts = buffer.split('\n');
      buffer = parts.pop()!;
      for (const p of parts) p === 'listening' ? resolve() : lines.push(p);
    });
  });
  return { path, messages: () => lines, ready };
}
