/** HOTCTL_RSYNC names another rsync binary (a newer build, or a wrapper adding e.g. --bwlimit). */
export const rsyncBinary = () => process.env.HOTCTL_RSYNC || 'rsync'
