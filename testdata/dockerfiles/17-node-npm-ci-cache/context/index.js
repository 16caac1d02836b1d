console.log(`node app in ${process.env.NODE_ENV}`);
