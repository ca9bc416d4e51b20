import { RegisterMap } from './fake-bus.js';

/** Table 8: the config register's reset value. */
const CONFIG_RESET = 0x8583;
/** Table 8 PGA[11:9] → full-scale range in volts (codes 110 and 111 are also ±0.256 V). */
const FULL_SCALE_V = [6.144, 4.096, 2.048, 1.024, 0.512, 0.256, 0.256, 0.256];
/** Table 8 MUX[14:12] → [positive input, negative input or -1 for GND]. */
const MUX_INPUTS: [number, number][] = [
  [0, 1],
  [0, 3],
  [1, 3],
  [2, 3],
  [0, -1],
  [1, -1],
  [2, -1],
  [3, -1],
];

/**
 * An ADS1115 register map (datasheet SBAS444 section 9.6): 16-bit registers behind a pointer byte, written and
 * read MSB first. A write of OS = 1 in single-shot mode converts the selected input at once; the result is the
 * ideal code for the input voltage (LSB = FSR / 2^15, clipped to 0x8000..0x7FFF, section 9.3.3).
 */
export class FakeAds1115 extends RegisterMap {
  private readonly inputsV = [0, 0, 0, 0];
  private config = CONFIG_RESET;
  private conversion = 0;
  conversions = 0;

  constructor(inputsV: number[] = [0, 0, 0, 0]) {
    super();
    inputsV.forEach((volts, index) => this.setInput(index, volts));
    this.refresh();
  }

  setInput(input: number, volts: number): void {
    this.inputsV[input] = volts;
  }

  override write(data: Buffer): void {
    this.pointer = data[0]! & 0x03;
    if (data.length >= 3 && this.pointer === 0x01) {
      this.config = data.readUInt16BE(1);
      if (this.config & 0x8000) this.convert();
      this.config |= 0x8000; // conversion finished at once: OS reads 1 (not converting)
    }
    this.refresh();
  }

  override read(length: number): Buffer {
    this.refresh();
    const start = this.pointer * 2;
    return Buffer.from(this.registers.subarray(start, start + length));
  }

  private convert(): void {
    this.conversions++;
    const [positive, negative] = MUX_INPUTS[(this.config >> 12) & 0x07]!;
    const volts = this.inputsV[positive]! - (negative >= 0 ? this.inputsV[negative]! : 0);
    const fullScaleV = FULL_SCALE_V[(this.config >> 9) & 0x07]!;
    const code = Math.round((volts * 32768) / fullScaleV);
    this.conversion = Math.min(0x7fff, Math.max(-0x8000, code));
  }

  /** Lays registers out as 2-byte slots (pointer p at offset 2p) so reads of any pointer are simple. */
  private refresh(): void {
    this.registers.writeInt16BE(this.conversion, 0);
    this.registers.writeUInt16BE(this.config, 2);
  }
}
