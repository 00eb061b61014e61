export class RedisStore { static async connect(_: unknown): Promise<never> { throw new Error("not yet"); } }
