/**
 * Limits shared by every operation, so that open, convert and `info --backing-chain` agree.
 * @module
 */

/**
 * Most backing files below the image the user names. qemu has no fixed limit (qemu-img 7.2
 * follows and converts a 1,100-deep qcow2 chain), so this one is generous: it bounds the file
 * descriptors and memory a hostile chain can claim, far above any real chain.
 */
export const MAX_BACKING_CHAIN_DEPTH = 4096;
