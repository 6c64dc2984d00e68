// Time is injected (buildApp's `now`), so expiry tests move a clock instead of sleeping.
export type Clock = () => Date;

export const systemClock: Clock = () => new Date();

export const addSeconds = (d: Date, seconds: number): Date => new Date(d.getTime() + seconds * 1000);

export const unixSeconds = (d: Date): number => Math.floor(d.getTime() / 1000);
