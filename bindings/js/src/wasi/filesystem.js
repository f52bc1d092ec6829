// `wasi:filesystem`: no preopened directories, so a component can open nothing. (The real
// vault client does not import it; a component that does, like the test suite's hostile
// stand-in, finds an empty file system.)

class Descriptor {}
class DirectoryEntryStream {}

export const preopens = { getDirectories: () => [] };
export const types = { Descriptor, DirectoryEntryStream, filesystemErrorCode: () => undefined };
